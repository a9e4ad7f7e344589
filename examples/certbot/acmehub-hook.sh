#!/bin/sh
# acmehub-hook.sh: certbot --manual hook that publishes DNS-01 values through
# acmehub's native API (POST /api/v1/challenges) and removes them again
# (POST /api/v1/challenges/cleanup). One script for both hooks:
#
#   certbot certonly --manual --preferred-challenges dns \
#     --manual-auth-hook '/etc/letsencrypt/acmehub-hook.sh auth' \
#     --manual-cleanup-hook '/etc/letsencrypt/acmehub-hook.sh cleanup' \
#     -d example.org -d '*.example.org'
#
# Without an argument the script cleans up when certbot set
# CERTBOT_AUTH_OUTPUT (it does so only for the cleanup hook), else presents.
# Prefer the argument: `certbot renew` keeps the variable set from one
# certificate's cleanup into the next certificate's auth hook.
#
# Settings, from the environment, else from the file ACMEHUB_CONFIG
# (default /etc/letsencrypt/acmehub.conf: KEY=value lines, owned by the
# user running certbot, mode 0600 or stricter):
#   ACMEHUB_URL    the hub's API base URL, e.g. https://hub.example.net
#   ACMEHUB_TOKEN  a hub token "<client id>.<secret>" (sent as a Bearer token)
#   ACMEHUB_PROPAGATION_SECONDS  seconds to wait after the last value is
#                  published (default 0: the hub serves a value as soon as
#                  the API answers; raise it if secondaries lag)
#
# Needs only sh and curl. Exits non-zero with one clear line on stderr on
# any failure; the token never appears in messages or on curl's command
# line (it reaches curl on stdin).
set -eu
set -f # no pathname expansion: nothing here needs it

prog=acmehub-hook
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

command -v curl >/dev/null 2>&1 || die "curl is not installed"

# --- which hook ------------------------------------------------------------
mode=${1:-}
if [ -z "$mode" ]; then
	if [ "${CERTBOT_AUTH_OUTPUT+set}" = set ]; then mode=cleanup; else mode=auth; fi
fi
case $mode in
auth | cleanup) ;;
*) die "usage: $0 [auth|cleanup] (run by certbot as --manual-auth-hook / --manual-cleanup-hook)" ;;
esac

# --- settings --------------------------------------------------------------
url=${ACMEHUB_URL:-}
token=${ACMEHUB_TOKEN:-}
wait_s=${ACMEHUB_PROPAGATION_SECONDS:-}
conf=${ACMEHUB_CONFIG:-/etc/letsencrypt/acmehub.conf}

if [ -z "$url" ] || [ -z "$token" ]; then
	[ -f "$conf" ] || die "set ACMEHUB_URL and ACMEHUB_TOKEN, or write them to $conf (mode 0600)"
	[ -r "$conf" ] || die "$conf: not readable"
	# The file holds a secret: refuse it when others could read it, as ssh does.
	# shellcheck disable=SC2012,SC2046 # ls is the portable way to read the mode; split on purpose
	set -- $(ls -ln -- "$conf")
	case $1 in
	????------*) ;;
	*) die "$conf: mode $1 lets others read the token; chmod 600 $conf" ;;
	esac
	[ "$3" = "$(id -u)" ] || die "$conf: owned by uid $3, not by the user running the hook (uid $(id -u))"
	# Parsed, not sourced: the file is data, never code.
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%"$(printf '\r')"}
		case $line in
		'' | '#'*) ;;
		ACMEHUB_URL=*) [ -n "$url" ] || url=${line#*=} ;;
		ACMEHUB_TOKEN=*) [ -n "$token" ] || token=${line#*=} ;;
		ACMEHUB_PROPAGATION_SECONDS=*) [ -n "$wait_s" ] || wait_s=${line#*=} ;;
		*) die "$conf: unknown line (want ACMEHUB_URL=, ACMEHUB_TOKEN= or ACMEHUB_PROPAGATION_SECONDS=)" ;;
		esac
	done <"$conf"
fi

[ -n "$url" ] || die "ACMEHUB_URL is not set"
[ -n "$token" ] || die "ACMEHUB_TOKEN is not set"
case $url in
http://* | https://*) ;;
*) die "ACMEHUB_URL must start with https:// (or http:// on loopback)" ;;
esac
case $url in
*[[:space:]\"\\]*) die "ACMEHUB_URL has spaces, quotes or backslashes" ;;
esac
url=${url%/}
case $url in
https://* | http://127.* | http://localhost | http://localhost[:/]* | http://\[::1\]*) ;;
*) printf '%s: warning: %s is plain http; the token travels in clear text\n' "$prog" "$url" >&2 ;;
esac
# Client ids and secrets are base32/base64url with a prefix; anything else is
# a paste error, and must not reach curl's config syntax below.
case $token in
*[!A-Za-z0-9_.-]* | *.*.* | .* | *.) die "ACMEHUB_TOKEN is not of the form <client id>.<secret>" ;;
*.*) ;;
*) die "ACMEHUB_TOKEN is not of the form <client id>.<secret>" ;;
esac
case ${wait_s:=0} in
'' | *[!0-9]*) die "ACMEHUB_PROPAGATION_SECONDS must be a whole number of seconds" ;;
esac

# --- what certbot asks for -------------------------------------------------
domain=$(printf '%s' "${CERTBOT_DOMAIN:-}" | tr '[:upper:]' '[:lower:]')
domain=${domain#\*.}
domain=${domain%.}
value=${CERTBOT_VALIDATION:-}
[ -n "$domain" ] || die "CERTBOT_DOMAIN is not set (run this script from certbot)"
[ -n "$value" ] || die "CERTBOT_VALIDATION is not set (run this script from certbot)"
# Both go into JSON unescaped, so only characters that need no escaping pass:
# an A-label domain name, and a base64url value.
case $domain in
*[!a-z0-9.-]* | .* | *..* | -* | *.-* | *-.* | *-) die "CERTBOT_DOMAIN $domain is not a domain name (IDNs must be in A-label form)" ;;
esac
[ ${#domain} -le 253 ] || die "CERTBOT_DOMAIN is longer than 253 characters"
case $value in
*[!A-Za-z0-9_-]*) die "CERTBOT_VALIDATION is not base64url" ;;
esac
[ ${#value} -le 255 ] || die "CERTBOT_VALIDATION is longer than 255 characters"

# --- the API ---------------------------------------------------------------
# call PATH JSON: POSTs JSON, sets status and body. The Authorization header
# goes to curl on stdin (-K -), so it never shows in ps or /proc.
call() {
	out=$(printf 'header = "Authorization: Bearer %s"\n' "$token" |
		curl -q -sS -K - --connect-timeout 10 --max-time 30 --retry 2 \
			-H 'Content-Type: application/json' -H 'Accept: application/json' \
			--data-binary "$2" -w '\n%{http_code}' -- "$url$1") ||
		die "$mode $domain: cannot reach $url (curl exit $?)"
	status=${out##*"
"}
	body=${out%"
"*}
}

# field NAME: a string field of the one-line JSON body.
field() {
	printf '%s\n' "$body" | sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' | head -n 1
}

# fail WHAT: the problem document's code and detail, or the start of the body.
fail() {
	code=$(field code)
	detail=$(field detail)
	if [ -n "$code" ]; then
		die "$1: HTTP $status $code: $detail"
	fi
	die "$1: HTTP $status: $(printf '%s\n' "$body" | head -n 3 | cut -c 1-200)"
}

json='{"identifier":"'$domain'","value":"'$value'"}'
if [ "$mode" = auth ]; then
	call /api/v1/challenges "$json"
	[ "$status" = 201 ] || fail "present $domain"
	# certbot keeps this line as CERTBOT_AUTH_OUTPUT and shows it.
	printf 'acmehub: published %s (challenge %s); the domain owner adds once: %s CNAME %s\n' \
		"$(field record_name)" "$(field id)" "$(field record_name)" "$(field cname_target)"
	if [ "${CERTBOT_REMAINING_CHALLENGES:-0}" = 0 ] && [ "$wait_s" -gt 0 ]; then
		sleep "$wait_s"
	fi
else
	call /api/v1/challenges/cleanup "$json"
	[ "$status" = 200 ] || fail "clean up $domain"
	removed=$(printf '%s\n' "$body" | sed -n 's/.*"removed":\([0-9]*\).*/\1/p')
	printf 'acmehub: removed %s value(s) for %s\n' "${removed:-?}" "$domain"
fi
