"""Request load for the interactive and batch profiles: token shapes, prompts, the driver, statistics, sweeps."""
