"""Typed application keys: what the admin app's handlers reach, and only through these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from shadowproxy.pipeline import Pipeline
    from shadowproxy.rules.holder import RulesHolder
    from shadowproxy.settings import Settings
    from shadowproxy.store.contract import Store
    from shadowproxy.store.writer import StoreWriter

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
WRITER: web.AppKey[StoreWriter] = web.AppKey("writer")
RULES: web.AppKey[RulesHolder] = web.AppKey("rules")
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
