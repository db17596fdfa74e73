"""The one error of the schema layer: a schema that cannot be enforced exactly, or not within budget."""

from __future__ import annotations


class SchemaError(ValueError):
    """A schema the grammar cannot enforce exactly; the message names the keyword and where it is.

    ``location`` is a dotted path inside the schema (``properties.age.minimum``), empty for the root.
    """

    def __init__(self, message: str, location: str = ""):
        where = f" at {location}" if location else ""
        super().__init__(f"{message}{where}")
        self.location = location
