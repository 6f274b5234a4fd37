#!/usr/bin/env bash
# bench/git.sh on a repository with a `.gitattributes` as real projects have them (line
# endings, whitespace rules, diff and merge drivers, linguist and export settings, and CRLF
# for Windows batch files, which converts the few files it matches): flow's worktree writer
# must keep its fast path for every file no attribute converts. Prints
# the same phases and ratio as git.sh (target <= 0.5); asserts nothing.
set -euo pipefail
cd "$(dirname "$0")"
ATTRIBUTES='* text=auto\n*.txt text eol=lf whitespace=trailing-space,tab-in-indent\n*.sh eol=lf\n*.[ch] whitespace=tab-in-indent diff=cpp\n*.dsw -crlf\n*.bat text eol=crlf\n*.png binary\nd00*/** linguist-generated=true export-ignore\nCHANGES merge=union\n' \
    exec bash ./git.sh
