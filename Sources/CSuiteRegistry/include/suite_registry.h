#ifndef SUITE_REGISTRY_H
#define SUITE_REGISTRY_H

/* The suite registry: each suite places one entry point in the `kvmcheck_suites` linker
 * section (see Suites/README.md); the linker brackets the section with __start/__stop symbols,
 * which Swift cannot name, so these two read it. */

/* How many entries the section holds (0 when no suite is linked in). */
long suite_registry_count(void);

/* The entry at `index` (0 <= index < suite_registry_count()): returns the boxed suite. */
void *(*suite_registry_entry(long index))(void);

#endif
