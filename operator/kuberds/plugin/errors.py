"""The one error the plugin reports: a clear line on stderr and exit status 1."""

from __future__ import annotations


class PluginError(Exception):
    """Something the user can act on; its message is the whole report."""
