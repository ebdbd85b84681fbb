"""kuberds: managed database servers on Kubernetes, the way RDS, Aurora and ElastiCache give them on AWS."""

__version__ = "0.1.0"
API_GROUP = "kuberds.io"
API_VERSION = "v1alpha1"
