-- Assigns no global: its processes read the shard's globals directly, with no table of their own.
local function main()
	return leaked_global == nil and type(string.format) == "function"
end
return { main = main }
