/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * vmextra_priv: what the store (vmextra.c) and the document code
 * (vmextra_doc.c) share. The document side does no I/O and takes no lock;
 * the store calls it with its own locks held where it must.
 */
#ifndef XENOPS_VMEXTRA_PRIV_H
#define XENOPS_VMEXTRA_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "vmextra/vmextra.h"

/*
 * Decode text (len bytes) as the document of VM id; where names it in log
 * lines and error details. Older shapes are migrated with a WARN; anything
 * else wrong gives XO_EINVAL. *rename_from_r (if not NULL) gets a malloc'd
 * copy of the rename marker, or NULL.
 */
int vmextra_doc_decode(const char *where, const char *id, const char *text,
                       size_t len, struct vmextra_doc **doc_r,
                       char **rename_from_r);

/* Serialise doc at generation, with the rename marker if rename_from is not
 * NULL, into a malloc'd *text_r; refuses (XO_EINVAL) records that are not
 * valid JSON and documents over VMEXTRA_MAX_DOC_BYTES. */
int vmextra_doc_encode(const struct vmextra_doc *doc, uint64_t generation,
                       const char *rename_from, char **text_r);

/* The checks the JSON encoder cannot make: ids, bounds, plain fields
 * (XO_EINVAL). */
int vmextra_doc_validate(const struct vmextra_doc *doc);

#endif
