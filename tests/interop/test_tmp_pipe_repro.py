import subprocess, time
from interop_support import need_tool

def test_repro(server):
    t = time.monotonic()
    done = subprocess.run([need_tool("smtp-source"), "-s", "5", "-m", "500", "-f", "a@example.org", "-t", "alice@example.com",
                           f"127.0.0.1:{server.ports['smtp']}"], capture_output=True, text=True, timeout=40)
    print("smtp-source", done.returncode, round(time.monotonic() - t, 1), done.stdout[-300:], done.stderr[-300:])
    print("delivered", len(server.messages("alice@example.com")))
