"""Layer 0, core: errors, profiles, devices and progress, shared files. Imports nothing else of autoshield."""
