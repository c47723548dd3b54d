"""invoice: writes an invoice for each shipped order; serverless, at zero until one comes."""
