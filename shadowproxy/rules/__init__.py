"""Comparison rules: which endpoint a request belongs to and how its responses are compared.

``load_ruleset(path)`` reads and compiles a rule file (or gives the built-in defaults);
``Ruleset.resolve(...)`` finds a request's :class:`EndpointRules`; :class:`RulesHolder` keeps the
rules in force and swaps them on reload, keeping the old ones when the new file is invalid.
"""

from shadowproxy.rules.loader import BUILTIN_VERSION, RulesError, load_ruleset, parse_ruleset
from shadowproxy.rules.ruleset import EndpointRules, HeaderRule, Ruleset

__all__ = [
    "BUILTIN_VERSION",
    "EndpointRules",
    "HeaderRule",
    "RulesError",
    "Ruleset",
    "load_ruleset",
    "parse_ruleset",
]
