"""One schema-lowering layer: JSON Schema -> an exact intermediate tree -> GBNF for JSON output and for
Gemma 4's tool-call syntax. Nothing here touches llama.cpp: the output is GBNF text that llama.cpp's
grammar engine runs (``edge.core.constraints.Constraint``).

    tree = lower_schema(schema, limits)          # SchemaError: a 400 naming keyword and place
    rules = Rules(limits)
    root = json_rules(tree, rules)               # or gemma_rules(tree, rules, "<[42]>")
    gbnf = f"root ::= {root}\\n{rules.text()}"

``docs/api.md`` lists every keyword and how it is enforced.
"""

from edge.schema.emit import Rules
from edge.schema.errors import SchemaError
from edge.schema.gemma_emit import gemma_rules
from edge.schema.json_emit import json_rules
from edge.schema.limits import DEFAULT_LIMITS, Limits, limits_for_vocabulary
from edge.schema.lower import lower_schema

__all__ = ["DEFAULT_LIMITS", "Limits", "Rules", "SchemaError", "gemma_rules", "json_grammar", "json_rules",
           "limits_for_vocabulary", "lower_schema"]


def json_grammar(schema, limits: Limits = DEFAULT_LIMITS) -> str:
    """A complete GBNF grammar (root rule ``root``) for JSON text valid against ``schema``."""
    tree = lower_schema(schema, limits)
    rules = Rules(limits)
    root = json_rules(tree, rules)
    return f"root ::= {root}\n{rules.text()}"
