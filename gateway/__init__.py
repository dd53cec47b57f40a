"""ogc-hpc-gateway: OGC API - Processes and WPS on a Slurm cluster, jobs run as their users."""

__version__ = "0.1.0"
