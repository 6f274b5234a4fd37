#!/usr/bin/env bash
# bench/git.sh on a real public repository with a `.gitattributes`: curl (4,400 files; its
# `.gitattributes` has `eol=lf` lines, `whitespace=tab-in-indent` and `*.bat text eol=crlf`).
# SOURCE=/path/to/a/clone measures another repository; without it, curl is cloned from GitHub
# into a cache folder once (network needed the first time). Prints the same phases and ratio
# as git.sh (target <= 0.5); asserts nothing.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${SOURCE:-}" ]; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/flow-bench/curl"
    if [ ! -d "$cache/.git" ]; then
        mkdir -p "$(dirname "$cache")"
        git clone -q https://github.com/curl/curl.git "$cache"
    fi
    SOURCE="$cache"
fi
SOURCE="$SOURCE" exec bash ./git.sh
