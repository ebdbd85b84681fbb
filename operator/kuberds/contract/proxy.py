"""What the operator, the database pods' agents and the proxy pods agree on about the proxy:
the two logins and the password lookup.

The proxy holds no copy of users' passwords: it logs in to the server as PROXY_USER, whose
only right is LOOKUP_FUNCTION (SECURITY DEFINER, installed by the agent in every database:
PgBouncer 1.18 runs its auth_query in the database the client asked for), and checks each
client's SCRAM exchange against the verifier that returns. CONSOLE_USER exists on the proxy
only: its admin console, which the operator pauses and resumes around switchovers.
"""

from __future__ import annotations

PROXY_USER = "kuberds_proxy"
CONSOLE_USER = "kuberds_console"
CONSOLE_DATABASE = "pgbouncer"
LOOKUP_FUNCTION = "kuberds.proxy_lookup"
AUTH_QUERY = f"SELECT usename, passwd FROM {LOOKUP_FUNCTION}($1)"
# The longest the operator holds a proxy paused (its steps' bounds add up to less); a proxy
# paused longer was left so by an operator that went away, and resumes itself.
HOLD_LIMIT_SECONDS = 90


def users_file(proxy_password: str, console_password: str) -> str:
    """PgBouncer's user list with the two logins (plain text: it is kept in memory only)."""
    for password in (proxy_password, console_password):
        if not password or '"' in password or any(ord(c) < 32 or ord(c) == 127 for c in password):
            raise ValueError("a proxy password is empty or holds a quote or a control character")
    return f'"{PROXY_USER}" "{proxy_password}"\n"{CONSOLE_USER}" "{console_password}"\n'
