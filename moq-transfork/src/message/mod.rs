//! Every message of the wire format (spec §6), one module per family.
