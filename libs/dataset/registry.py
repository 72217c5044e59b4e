"""Registry of data sets by name: a new data set is one class plus one register line."""
from typing import Callable, Dict, List, Type

from ..errors import VOSError

_DATASETS: Dict[str, type] = {}


def register_dataset(name: str) -> Callable[[Type], Type]:
    """Class decorator: make a data set class buildable by `name` (e.g. `valset DAVIS17`)."""

    def wrap(cls: Type) -> Type:
        if name in _DATASETS and _DATASETS[name] is not cls:
            raise ValueError(f"data set name {name!r} is already registered by {_DATASETS[name].__name__}")
        _DATASETS[name] = cls
        cls.registered_name = name
        return cls

    return wrap


def known_datasets() -> List[str]:
    """Names of every registered data set, sorted."""
    return sorted(_DATASETS)


def get_dataset_class(name: str, key: str = "") -> type:
    """The class registered as `name`; an unknown name raises a VOSError listing the known ones (and naming
    the config `key` that gave it)."""
    if name not in _DATASETS:
        where = f"config key {key!r}: " if key else ""
        raise VOSError(f"{where}unknown data set {name!r}; known data sets: {', '.join(known_datasets())} "
                       "(register a custom one with @register_dataset, see DATASET.md)")
    return _DATASETS[name]
