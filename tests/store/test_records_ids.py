"""Record ids are random version 4 UUIDs in their usual text form, as before they stopped going through uuid.UUID."""

from __future__ import annotations

import uuid

from guildgate.store.repos import new_record_id


def test_record_ids_are_random_version_4_uuids_in_canonical_text() -> None:
    ids = [new_record_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for record_id in ids:
        parsed = uuid.UUID(record_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122), record_id
        assert str(parsed) == record_id  # lower-case hex, 8-4-4-4-12
    # every other bit is random: across 5000 ids, each of the 122 random bits is seen both set and clear
    bits = [uuid.UUID(record_id).int for record_id in ids]
    fixed = (0xF << 76) | (0x3 << 62)  # the version nibble and the variant's two bits
    seen_set = seen_clear = 0
    for value in bits:
        seen_set |= value
        seen_clear |= ~value
    random_bits = ((1 << 128) - 1) & ~fixed
    assert seen_set & random_bits == random_bits
    assert seen_clear & random_bits == random_bits
