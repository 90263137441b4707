<#
.SYNOPSIS
Install pixlift for the current user on Windows and start it at every login, with no console window.

.DESCRIPTION
Creates a virtual environment in %LOCALAPPDATA%\pixlift-venv, installs pixlift into it with pip, and puts a
shortcut named pixlift in your Startup folder that runs "pythonw.exe -m pixlift serve" (pythonw: no console
window). Running it again upgrades pixlift and rewrites the shortcut. No administrator rights needed.
Your pixlift data (settings, token, upload history) lives in %LOCALAPPDATA%\pixlift.

.PARAMETER Source
What pip installs: a wheel, a source folder, or a requirement. Default: pixlift (from PyPI).

.PARAMETER Python
The Python 3.11+ used to create the environment. Default: the py launcher (py -3), else python.

.PARAMETER NoStart
Do not start pixlift now (it starts at the next login).

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installer\install-windows.ps1
#>
[CmdletBinding()]
param(
    [string]$Source = "pixlift",
    [string]$Python = "",
    [switch]$NoStart
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Venv = Join-Path $env:LOCALAPPDATA "pixlift-venv"
$VenvPython = Join-Path $Venv "Scripts\python.exe"
$Pythonw = Join-Path $Venv "Scripts\pythonw.exe"
$Shortcut = Join-Path ([Environment]::GetFolderPath("Startup")) "pixlift.lnk"

function Find-Python {
    if ($Python) { return @($Python) }
    if (Get-Command py -ErrorAction SilentlyContinue) { return @("py", "-3") }
    if (Get-Command python -ErrorAction SilentlyContinue) { return @("python") }
    throw "No Python found. Install Python 3.11 or newer from python.org, or pass -Python C:\path\to\python.exe"
}

function Stop-Pixlift {
    # Copies started by this shortcut run "pythonw.exe -m pixlift serve". Windows has no SIGTERM for a process
    # without a window; pixlift journals every upload's state as it changes and resumes interrupted uploads.
    Get-CimInstance Win32_Process -Filter "Name = 'pythonw.exe' OR Name = 'python.exe'" |
        Where-Object { $_.CommandLine -and $_.CommandLine -like "*-m pixlift serve*" } |
        ForEach-Object { Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue }
}

$py = @(Find-Python)
$exe = $py[0]
$pre = @($py | Select-Object -Skip 1)
& $exe @pre -c "import sys; sys.exit(sys.version_info < (3, 11))"
if ($LASTEXITCODE -ne 0) { throw "pixlift needs Python 3.11 or newer; pass -Python C:\path\to\python.exe" }

if (Test-Path $Source) { $Source = (Resolve-Path $Source).Path }
if (-not (Test-Path $VenvPython)) {
    Write-Host "pixlift: creating the environment $Venv"
    & $exe @pre -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "could not create $Venv" }
}
Write-Host "pixlift: installing $Source into $Venv"
& $VenvPython -m pip install --quiet --disable-pip-version-check --upgrade $Source
if ($LASTEXITCODE -ne 0) { throw "pip could not install $Source" }
if (Test-Path $Source) {
    # pip calls a local wheel or folder of an already installed version "satisfied": put this one in anyway.
    & $VenvPython -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $Source
    if ($LASTEXITCODE -ne 0) { throw "pip could not install $Source" }
}
if (-not (Test-Path $Pythonw)) { throw "the environment has no pythonw.exe ($Pythonw)" }
$version = & $VenvPython -m pixlift --version
Write-Host "pixlift: installed $version"

Stop-Pixlift  # an older copy: the new one starts below
$shell = New-Object -ComObject WScript.Shell
$link = $shell.CreateShortcut($Shortcut)
$link.TargetPath = $Pythonw
$link.Arguments = "-m pixlift serve"
$link.WorkingDirectory = $Venv
$link.Description = "pixlift image upload daemon"
$link.WindowStyle = 7  # minimized; pythonw opens no window anyway
$link.Save()
Write-Host "pixlift: wrote $Shortcut (starts pixlift at every login)"

if ($NoStart) {
    Write-Host "pixlift: not started now (-NoStart); it starts at your next login"
} else {
    Start-Process -FilePath $Pythonw -ArgumentList "-m", "pixlift", "serve" -WorkingDirectory $Venv -WindowStyle Hidden
    Write-Host "pixlift: started; look for its icon in the notification area"
}
Write-Host "pixlift: uninstall with: installer\uninstall-windows.ps1 (add -Purge to delete your pixlift data too)"
