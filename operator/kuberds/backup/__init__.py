"""Backups: where they go, how they are named, and when they are due. Pure except `runner`.

A server's backups live in one object-store location with two pgBackRest repositories:

    repo1  automated  daily base backups; pgBackRest expires them by time (retentionDays)
    repo2  snapshots  manual and final DBSnapshots; retention never touches them, only
                      deleting the DBSnapshot object does

Both receive every archived WAL segment, so each is complete on its own: a snapshot stays
restorable after the automated backups around it have expired.
"""
