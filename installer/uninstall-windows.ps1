<#
.SYNOPSIS
Remove what install-windows.ps1 installed: stop pixlift, delete the Startup shortcut and the environment.

.DESCRIPTION
Your pixlift data (%LOCALAPPDATA%\pixlift: settings, token, upload history, files kept by the "local" profile)
stays unless you pass -Purge.

.PARAMETER Purge
Also delete %LOCALAPPDATA%\pixlift.
#>
[CmdletBinding()]
param([switch]$Purge)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Venv = Join-Path $env:LOCALAPPDATA "pixlift-venv"
$Data = Join-Path $env:LOCALAPPDATA "pixlift"
$Shortcut = Join-Path ([Environment]::GetFolderPath("Startup")) "pixlift.lnk"

# Copies started by the shortcut run "pythonw.exe -m pixlift serve".
Get-CimInstance Win32_Process -Filter "Name = 'pythonw.exe' OR Name = 'python.exe'" |
    Where-Object { $_.CommandLine -and $_.CommandLine -like "*-m pixlift serve*" } |
    ForEach-Object { Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue }

if (Test-Path $Shortcut) { Remove-Item -Force $Shortcut; Write-Host "pixlift: removed $Shortcut" }
if (Test-Path (Join-Path $Venv "pyvenv.cfg")) {
    Start-Sleep -Seconds 1  # let the stopped process release its files
    Remove-Item -Recurse -Force $Venv
    Write-Host "pixlift: removed $Venv"
}
if ($Purge) {
    if (Test-Path $Data) { Remove-Item -Recurse -Force $Data; Write-Host "pixlift: deleted your pixlift data in $Data" }
} elseif (Test-Path $Data) {
    Write-Host "pixlift: kept your pixlift data in $Data (run with -Purge to delete it)"
}
Write-Host "pixlift: uninstalled"
