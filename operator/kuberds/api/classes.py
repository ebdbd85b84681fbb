"""Instance classes and cache node types: what an RDS/ElastiCache name means in resources.

The names follow AWS so a user finds them where they look; the sizes are what a pod
requests (memory requests equal limits: a database must not be OOM-killed for using the
memory it was promised; CPU may burst to the limit).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    cpu_request: str
    cpu_limit: str
    memory: str

    def resources(self) -> dict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory},
        }


DB_INSTANCE_CLASSES: dict[str, Size] = {
    "db.t3.micro": Size("250m", "2", "1Gi"),
    "db.t3.small": Size("500m", "2", "2Gi"),
    "db.t3.medium": Size("1", "2", "4Gi"),
    "db.m6.large": Size("2", "2", "8Gi"),
    "db.m6.xlarge": Size("4", "4", "16Gi"),
    "db.m6.2xlarge": Size("8", "8", "32Gi"),
    "db.r6.large": Size("2", "2", "16Gi"),
    "db.r6.xlarge": Size("4", "4", "32Gi"),
    "db.r6.2xlarge": Size("8", "8", "64Gi"),
}

CACHE_NODE_TYPES: dict[str, Size] = {
    "cache.t3.micro": Size("250m", "2", "512Mi"),
    "cache.t3.small": Size("500m", "2", "1536Mi"),
    "cache.t3.medium": Size("1", "2", "3Gi"),
    "cache.m6.large": Size("2", "2", "6Gi"),
    "cache.m6.xlarge": Size("4", "4", "12Gi"),
    "cache.r6.large": Size("2", "2", "13Gi"),
    "cache.r6.xlarge": Size("4", "4", "26Gi"),
}
