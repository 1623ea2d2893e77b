#!/bin/sh
# Starts Alertmanager with the Discord webhook URLs taken from the environment: Alertmanager 0.25
# reads none, so the placeholders of alertmanager.yml are replaced in a copy, next to a copy of
# its templates, and the command given (Alertmanager) is run on that copy.
#   DISCORD_URGENT_WEBHOOK_URL, DISCORD_NORMAL_WEBHOOK_URL  the channels' webhook URLs
#   ALERTMANAGER_CONFIG_DIR   where alertmanager.yml and templates/ are (/etc/alertmanager)
#   ALERTMANAGER_RENDERED_DIR where the copy goes (/tmp/alertmanager)
set -eu
: "${DISCORD_URGENT_WEBHOOK_URL:?set DISCORD_URGENT_WEBHOOK_URL to the urgent channel's webhook URL}"
: "${DISCORD_NORMAL_WEBHOOK_URL:?set DISCORD_NORMAL_WEBHOOK_URL to the normal channel's webhook URL}"
src=${ALERTMANAGER_CONFIG_DIR:-/etc/alertmanager}
out=${ALERTMANAGER_RENDERED_DIR:-/tmp/alertmanager}
# sed's replacement treats & and \ specially and | ends it: escape them (a webhook URL may carry
# `?thread_id=…&wait=true`).
replacement() { printf '%s' "$1" | sed -e 's/[&\\|]/\\&/g'; }
urgent=$(replacement "$DISCORD_URGENT_WEBHOOK_URL")
normal=$(replacement "$DISCORD_NORMAL_WEBHOOK_URL")
mkdir -p "$out"
rm -rf "$out/templates"
cp -R "$src/templates" "$out/templates"
umask 077
sed -e "s|https://discord.invalid/urgent-webhook|$urgent|" \
    -e "s|https://discord.invalid/normal-webhook|$normal|" \
    "$src/alertmanager.yml" > "$out/alertmanager.yml"
exec "$@" --config.file="$out/alertmanager.yml"
