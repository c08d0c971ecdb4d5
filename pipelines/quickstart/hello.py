"""The quickstart job: say hello, and where it ran."""

import os
import socket

print("hello from Titan")
print(f"job {os.environ.get('TITAN_JOB_ID', '(not under Titan)')} on {socket.gethostname()}")
