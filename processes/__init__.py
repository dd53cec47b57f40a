"""Process definitions: what runs on the cluster, independent of site and transport."""

from processes.definition import ProcessDefinition, Resources, load_definition
from processes.registry import ProcessRegistry, UnknownProcess

__all__ = ["ProcessDefinition", "ProcessRegistry", "Resources", "UnknownProcess", "load_definition"]
