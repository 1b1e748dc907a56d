local ctx = require("ctx")
local function main(parent)
	local all = ctx.all()
	local inherited = process.exec("app:grandchild", "app:processes")
	all.inherited_tenant = inherited
	process.send(parent, "ctx", all)
end
return { main = main }
