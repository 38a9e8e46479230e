"""Attachments: encrypting files, previews, media types, local files, the transfer queue.

docs/attachments.md §2 and §4. The facade (:class:`~messenger.client.MessengerClient`)
is the only public way in; these modules are its machinery.
"""
