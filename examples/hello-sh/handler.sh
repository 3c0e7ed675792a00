#!/bin/sh
# The example exec-mode function: the request body arrives on stdin, the
# response is what the script prints, exit 0 is success.
name=$(cat)
[ -n "$name" ] || name=world
echo "Hello, $name! (call $FAAS_CALL_ID, $HTTP_METHOD $HTTP_PATH, from a busybox sandbox)"
