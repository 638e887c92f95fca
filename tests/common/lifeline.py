"""Runs a command until this script's stdin closes, then stops it (SIGTERM, SIGKILL after 5 s).

btvod's test guards hold the write end of that pipe: it closes when a guard is dropped, and
also when the test process dies in any way (even SIGKILL), so no test leaves an orphan behind.
Exits with the command's status (128 + N when signal N ended it).
"""

import os
import signal
import subprocess
import sys
import threading

child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)


def stop(*_ignored):
    # Only signals here: this also runs as a signal handler while the main thread waits.
    child.terminate()
    killer = threading.Timer(5.0, child.kill)
    killer.daemon = True
    killer.start()


def stop_at_eof():
    # The raw fd, not sys.stdin: a daemon thread blocked in a buffered read aborts shutdown.
    while os.read(0, 4096):
        pass
    stop()


for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, stop)
threading.Thread(target=stop_at_eof, daemon=True).start()
code = child.wait()
os._exit(128 - code if code < 0 else code)
