"""Log output: plain text by default, one JSON object per line with ``BILLING_LOG_FORMAT=json``."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` plus ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _config(log_format: str) -> dict[str, Any]:
    formatter: dict[str, Any] = ({"()": JsonFormatter} if log_format == "json"
                                 else {"format": _TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {
            "": {"handlers": ["default"], "level": "INFO"},
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            # alembic announces each of its plugins at INFO when first used (the worker's start).
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: our format for its logs and ours; access logs off (metrics count requests)."""
    return _config(log_format)


def configure_logging(log_format: str) -> None:
    """The same configuration for processes that do not run uvicorn (``billing worker``)."""
    logging.config.dictConfig(_config(log_format))
