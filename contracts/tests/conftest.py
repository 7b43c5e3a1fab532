"""Keep ``contracts`` pointing at the installed package while these tests are collected.

With ``--import-mode=importlib`` pytest names this folder's modules ``contracts.tests.*`` and,
because ``contracts`` was not imported yet, registers the *workspace folder* ``contracts/`` as a
namespace package called ``contracts``. That shadows the real package (``contracts/src/contracts``)
for every later ``import contracts...``. Swap the real package back in before any test imports it.
"""

from __future__ import annotations

import importlib
import sys

if getattr(sys.modules.get("contracts"), "__file__", None) is None:
    sys.modules.pop("contracts", None)
    importlib.import_module("contracts")
