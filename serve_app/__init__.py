"""The HTTP job API (Ray Serve + Starlette). Its routes arrive with the job API issue; for now the
package exists so deployment manifests and packaging can name it."""

from __future__ import annotations
