"""Prepare Superset's metadata in one process: schema upgrade, the admin user, roles.

Run with Superset's own Python (``.bi/venv/bin/python`` or the image's) before the web server
starts; safe to run again (an existing admin is kept as it is). The admin's password comes from
``SUPERSET_ADMIN_PASSWORD``, the user name from ``SUPERSET_ADMIN_USERNAME`` (default ``admin``).
"""

import os
import sys

from superset.cli.main import superset


def main() -> int:
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        print("superset_bootstrap: SUPERSET_ADMIN_PASSWORD is not set", file=sys.stderr)
        return 2
    username = os.environ.get("SUPERSET_ADMIN_USERNAME", "admin")
    steps = [
        ["db", "upgrade"],
        [
            "fab", "create-admin", "--username", username, "--firstname", "Warehouse",
            "--lastname", "Admin", "--email", f"{username}@localhost", "--password", password,
        ],
        ["init"],
    ]  # fmt: skip
    for args in steps:
        superset.main(args, prog_name="superset", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
