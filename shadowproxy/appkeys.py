"""Typed application keys: what the traffic and admin apps share, reached only through these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from shadowproxy.pipeline import Pipeline
    from shadowproxy.rules.holder import RulesHolder
    from shadowproxy.settings import Settings
    from shadowproxy.store.contract import Store
    from shadowproxy.store.writer import StoreWriter

SETTINGS = web.AppKey("settings", "Settings")
STORE = web.AppKey("store", "Store")
WRITER = web.AppKey("writer", "StoreWriter")
RULES = web.AppKey("rules", "RulesHolder")
PIPELINE = web.AppKey("pipeline", "Pipeline")
