# Install XFR Desktop from this offline bundle (Windows, PowerShell 5.1 or 7). Nothing is downloaded.
#
#   powershell -ExecutionPolicy Bypass -File install.ps1 [-Prefix DIR] [-Python "py -3.11"|PATH] [-NoShortcut]
#   powershell -ExecutionPolicy Bypass -File install.ps1 -VerifyOnly
#
# Needs: 64-bit Python of the bundle's version from python.org (with the "py" launcher), the Microsoft Visual C++
# 2015-2022 Redistributable (x64; torch needs it), and for CUDA bundles an NVIDIA driver recent enough for the
# bundle's CUDA build. The bundle must be built for Windows: build_offline_bundle.py --platform windows-x86_64.
# Same steps as install.sh: verify SHA256SUMS first, fresh venv, pip --no-index --require-hashes, models and
# resources beside the package, a Start-menu shortcut. NOTE: written to mirror install.sh; not run in CI (no
# Windows runner) - test it on a Windows machine before relying on it.
param(
    [string]$Prefix = (Join-Path $env:LOCALAPPDATA "Programs\XFR Desktop"),
    [string]$Python = "",
    [switch]$NoShortcut,
    [switch]$VerifyOnly
)
$ErrorActionPreference = "Stop"
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
function Fail($msg) { Write-Host "install.ps1: error: $msg" -ForegroundColor Red; exit 1 }
function Say($msg) { Write-Host "install.ps1: $msg" }
$start = Get-Date

# 1. verify every file against SHA256SUMS before anything is installed
$manifest = Join-Path $Here "SHA256SUMS"
if (-not (Test-Path $manifest)) { Fail "SHA256SUMS is missing: this is not a complete XFR Desktop bundle" }
$listed = @{}
$bad = @()
foreach ($line in Get-Content -LiteralPath $manifest) {
    if ($line.Length -lt 67) { continue }
    $digest = $line.Substring(0, 64).ToLower(); $rel = $line.Substring(66)
    $listed[$rel] = $true
    $path = Join-Path $Here ($rel -replace "/", "\")
    if (-not (Test-Path -LiteralPath $path)) { $bad += "$rel (missing)"; continue }
    $actual = (Get-FileHash -LiteralPath $path -Algorithm SHA256).Hash.ToLower()
    if ($actual -ne $digest) { $bad += "$rel (altered)" }
}
if ($bad.Count -gt 0) {
    $bad | Select-Object -First 20 | ForEach-Object { Write-Host "  $_" }
    Fail "checksum verification FAILED: the bundle is damaged or was altered; nothing was installed"
}
$unlisted = Get-ChildItem -LiteralPath $Here -Recurse -File | ForEach-Object {
    $_.FullName.Substring($Here.Length + 1) -replace "\\", "/" } | Where-Object { $_ -ne "SHA256SUMS" -and -not $listed.ContainsKey($_) }
if ($unlisted) { Fail "files not in SHA256SUMS (remove them or use the original bundle): $($unlisted -join ', ')" }
Say "checksums OK ($($listed.Count) files)"
if ($VerifyOnly) { exit 0 }

# 2. the interpreter
$meta = Get-Content -Raw -LiteralPath (Join-Path $Here "bundle.json") | ConvertFrom-Json
if (-not $meta.platform.StartsWith("windows-")) { Fail "this bundle is for $($meta.platform); on Linux run install.sh" }
$want = $meta.python
if ($Python -eq "") { $pyCmd = @("py", "-$want") } else { $pyCmd = $Python -split " " }
$pyExe = $pyCmd[0]; $pyArgs = @($pyCmd | Select-Object -Skip 1)
try { $have = & $pyExe @pyArgs -c "import sys; print('%d.%d' % sys.version_info[:2])" } catch { $have = "" }
if ($have -ne $want) { Fail "Python $want (64-bit) is needed (found '$have'); install it from python.org or pass -Python" }

# 3. a fresh virtual environment, installed from the wheelhouse only
$bundleId = (Get-FileHash -LiteralPath $manifest -Algorithm SHA256).Hash.ToLower().Substring(0, 12)
$target = Join-Path $Prefix "versions\$($meta.version)-$bundleId"
if (Test-Path $target) { Remove-Item -Recurse -Force $target }
Say "creating $target\venv"
& $pyExe @pyArgs -m venv (Join-Path $target "venv")
if ($LASTEXITCODE -ne 0) { Fail "cannot create the virtual environment in $target" }
$vpy = Join-Path $target "venv\Scripts\python.exe"
$env:PIP_CONFIG_FILE = "NUL"; $env:PIP_NO_INDEX = "1"; $env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
Say "installing the wheels from wheelhouse\ (no index, hash-checked) ..."
& $vpy -m pip install -q --no-index --find-links (Join-Path $Here "wheelhouse") --only-binary=:all: `
    --require-hashes -r (Join-Path $Here "requirements.lock")
if ($LASTEXITCODE -ne 0) { Remove-Item -Recurse -Force $target; Fail "pip could not install the wheels (see above)" }

# 4. models and resources beside the package, where it looks for them
$site = & $vpy -c "import pathlib, xfr_desktop; print(pathlib.Path(xfr_desktop.__file__).resolve().parents[1])"
Copy-Item -Recurse -Force (Join-Path $Here "models") (Join-Path $site "models")
Copy-Item -Recurse -Force (Join-Path $Here "resources") (Join-Path $site "resources")
& (Join-Path $target "venv\Scripts\xfr.exe") --version | Out-Null
if ($LASTEXITCODE -ne 0) { Fail "the xfr command does not start" }
Set-Content -LiteralPath (Join-Path $Prefix "current.txt") -Value $target

# 5. Start-menu shortcut (pythonw-style GUI entry point: xfr-desktop.exe)
if (-not $NoShortcut) {
    $lnk = Join-Path ([Environment]::GetFolderPath("Programs")) "XFR Desktop.lnk"
    $shell = New-Object -ComObject WScript.Shell
    $sc = $shell.CreateShortcut($lnk)
    $sc.TargetPath = Join-Path $target "venv\Scripts\xfr-desktop.exe"
    $sc.WorkingDirectory = $env:USERPROFILE
    $icon = Join-Path $site "resources\icons\xfr-desktop.ico"
    if (Test-Path $icon) { $sc.IconLocation = $icon }
    $sc.Save()
    Say "Start-menu shortcut $lnk"
}
Say ("XFR Desktop {0} installed in {1} ({2:N0} s)" -f $meta.version, $target, ((Get-Date) - $start).TotalSeconds)
