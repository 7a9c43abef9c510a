"""Desired state: the Workflow manifest model, its loading, checks and canonical form.

Pure: nothing in this package reads files, talks to git or the network, or reads the clock.
Callers hand in bytes (:class:`SourceFile`) and get back validated workflows and diagnostics.
"""

from __future__ import annotations

from agentflowd.manifest.canonical import canonical_dict, canonical_json, spec_hash
from agentflowd.manifest.cron import CronError, CronSchedule, parse_cron
from agentflowd.manifest.dag import levels, topological_order
from agentflowd.manifest.diagnostics import Diagnostic, Severity, format_path
from agentflowd.manifest.images import ImageLookup, ResolvedImage, combined_hash
from agentflowd.manifest.load import LoadedManifest, LoadReport, SourceFile, load_sources
from agentflowd.manifest.model import API_VERSION, KIND, Agent, Workflow
from agentflowd.manifest.schema import workflow_schema, workflow_schema_json
from agentflowd.manifest.yamlread import Limits

__all__ = [
    "API_VERSION",
    "Agent",
    "CronError",
    "CronSchedule",
    "Diagnostic",
    "ImageLookup",
    "KIND",
    "Limits",
    "LoadReport",
    "LoadedManifest",
    "ResolvedImage",
    "Severity",
    "SourceFile",
    "Workflow",
    "canonical_dict",
    "canonical_json",
    "combined_hash",
    "format_path",
    "levels",
    "load_sources",
    "parse_cron",
    "spec_hash",
    "topological_order",
    "workflow_schema",
    "workflow_schema_json",
]
