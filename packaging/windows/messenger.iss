; Inno Setup script: the Windows installer of the desktop app.
;
;   pyinstaller --noconfirm --clean packaging\messenger.spec
;   iscc /DAppVersion=0.1.0 packaging\windows\messenger.iss
;
; Installs dist\messenger\ (the PyInstaller one-folder build) for the current
; user (no administrator rights), adds a Start menu entry, registers the
; messenger: URL scheme (invite links), and uninstalls cleanly. The result is
; dist\messenger-<version>-windows-x64-setup.exe; .github/workflows/desktop.yml
; signs messenger.exe before and the installer after with signtool when the
; signing secrets are set. Written and run only in that workflow (windows-latest),
; never on the Linux machine where the project is developed.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Messenger"
#define AppExe "messenger.exe"
#define Root "..\.."

[Setup]
; The AppId identifies the installation for upgrades and uninstall: never change it.
AppId={{5B0C2E8A-7D3F-4C1E-9A56-3E1F0B7D2C94}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Messenger developers
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename=messenger-{#AppVersion}-windows-x64-setup
SetupIconFile={#Root}\resources\icons\messenger.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#Root}\dist\messenger\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; messenger: links (invites) open the app: HKCU\Software\Classes for a
; per-user install, HKLM for an administrator's (HKA picks the right one).
Root: HKA; Subkey: "Software\Classes\messenger"; ValueType: string; ValueName: ""; ValueData: "URL:Messenger link"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\messenger"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\messenger\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"",0"
Root: HKA; Subkey: "Software\Classes\messenger\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
