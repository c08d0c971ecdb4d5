"""GPU: list the GPUs this worker sees, with `nvidia-smi -L` when it is installed."""

import os
import shutil
import subprocess

print(f"gpu-info: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(not set)')}")
smi = shutil.which("nvidia-smi")
if smi is None:
    print("gpu-info: nvidia-smi is not installed on this worker")
else:
    done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    listing = (done.stdout or done.stderr).strip() or "(no output)"
    print(f"gpu-info: nvidia-smi -L says (exit {done.returncode}):")
    for line in listing.splitlines():
        print(f"  {line}")
