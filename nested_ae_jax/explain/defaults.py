"""Defaults of ``nested-ae explain`` shared by the package and its modules."""

#: background rows of the Shapley values (the expectation the attributions are relative to)
DEFAULT_BACKGROUND = 32
#: rows explained per scale
DEFAULT_ROWS = 64
