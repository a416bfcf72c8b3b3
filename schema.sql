-- placeholder: replaced by the gateway's schema
SELECT 1;
