local ctx = require("ctx")
local function main()
	return (ctx.get("tenant"))
end
return { main = main }
