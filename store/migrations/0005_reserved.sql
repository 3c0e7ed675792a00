-- Placeholder for version 5, reserved for the async queue (another branch):
-- versions must have no gaps. When the branches merge, that branch's 0005
-- replaces this file.
SELECT 1;
