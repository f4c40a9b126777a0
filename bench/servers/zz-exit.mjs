setTimeout(() => process.exit(0), Number(process.env.EXIT_AFTER || 14) * 1000);
await import(process.env.TARGET);
