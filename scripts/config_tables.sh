#!/usr/bin/env bash
# Rewrites the key tables of configs/README.md from the code's declarations (each app's
# KeyTable; apps/train/include/rnnkit/train/config_keys.h). The test Config.ReadmeKeyTablesAreTheCodes
# fails when they differ; this runs it as the writer.
# usage: scripts/config_tables.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: scripts/config_tables.sh BUILD_DIR}
RNNKIT_WRITE_CONFIG_TABLES=1 "$build/tests/rnnkit_train_tests" \
  --gtest_filter=Config.ReadmeKeyTablesAreTheCodes --gtest_brief=1
"$build/tests/rnnkit_train_tests" --gtest_filter=Config.ReadmeKeyTablesAreTheCodes --gtest_brief=1
echo "configs/README.md: key tables written"
