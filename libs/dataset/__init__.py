"""Data set readers; importing the package registers DAVIS16, DAVIS17, SYNTHETIC, VOS, VOS19, FOLDER, STATIC,
MOSE, MOSEv2, LVOS, LVOSv2 and SAV."""
from . import benchmarks, davis, folder, static, youtube

__all__ = ["benchmarks", "davis", "folder", "static", "youtube"]   # imported for their @register_dataset lines
