"""Comparing a primary's response with the shadow's under an endpoint's rules.

:func:`compare` judges one exchange (status, headers, body); :func:`diff_documents` compares two
parsed JSON documents; :func:`to_json_patch` writes differences as RFC 6902 operations.
"""

from shadowproxy.compare.comparator import compare, fingerprint
from shadowproxy.compare.differ import diff_documents
from shadowproxy.compare.patch import to_json_patch

__all__ = ["compare", "diff_documents", "fingerprint", "to_json_patch"]
