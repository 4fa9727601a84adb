"""Engine environments: one isolated Python environment per MLFF engine, registered as AiiDA codes."""

from .engines import ENGINES, EngineSpec
from .manager import EngineEnvironmentError, build_environment, environment_root, register_codes

__all__ = ('ENGINES', 'EngineEnvironmentError', 'EngineSpec', 'build_environment', 'environment_root', 'register_codes')
