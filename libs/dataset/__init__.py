"""Data set readers; importing the package registers DAVIS16, DAVIS17, SYNTHETIC, VOS, VOS19, FOLDER, STATIC."""
from libs.dataset import davis, folder, static, youtube

__all__ = ["davis", "folder", "static", "youtube"]   # imported for their @register_dataset lines
