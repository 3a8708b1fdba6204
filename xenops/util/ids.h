/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * ids: validation of the identifiers that end up in file names, store keys
 * and xenstore-shaped paths. Every VM id is checked here before any path or
 * key is built from it; a bad id gets an Internal_error detail naming it.
 */
#ifndef XENOPS_IDS_H
#define XENOPS_IDS_H

#include <stdbool.h>

#define IDS_UUID_LEN 36
#define IDS_DEV_MAX 32      /* longest device id, excluding the NUL */

/* 8-4-4-4-12 hex digits, either case, nothing else. */
bool ids_is_uuid(const char *s);
/* Device ids such as "xvda", "hda", "0": 1..IDS_DEV_MAX of [A-Za-z0-9_.-],
 * not starting with '.' or '-'. */
bool ids_is_dev(const char *s);

/* Return 0, or XO_EINVAL with a detail ("invalid VM id '...'") and a log
 * line. what names the argument in the message. */
int ids_check_vm(const char *id);
int ids_check_dev(const char *id);

/*
 * xenopsd's temporary migration ids: the first 24 characters of uuid, then
 * eleven zeros, then which ('0' for the source, '1' for the destination).
 * A uuid that already ends in eleven zeros would collide with one of them
 * (…000000000001 is its own destination id): its temporary ids use eleven
 * 'f's instead. uuid must be valid; out has room for IDS_UUID_LEN + 1.
 */
void ids_tmp_id(const char *uuid, char which, char *out);

#endif
