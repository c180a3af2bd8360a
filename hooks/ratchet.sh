#!/usr/bin/env bash
# Starts ratchet for the Claude Code plugin: the plugin's own build (a built checkout), else `ratchet` on PATH, else the npm package of the plugin's version.
set -euo pipefail
root="${CLAUDE_PLUGIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
# The hooks fire in every project; where ratchet never ran there is nothing to say, so answer before starting Node.
if [ "${1:-}" = hook ] && [ ! -f "${CLAUDE_PROJECT_DIR:-$PWD}/.ratchet/ratchet.db" ]; then exit 0; fi
if [ -f "$root/dist/cli.js" ]; then exec node "$root/dist/cli.js" "$@"; fi
if command -v ratchet >/dev/null 2>&1; then exec ratchet "$@"; fi
version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$root/package.json" 2>/dev/null | head -n 1)
exec npx -y "ratchet-mcp${version:+@$version}" "$@"
