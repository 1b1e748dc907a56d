local security = require("security")
local function main(parent)
	local a = security.actor()
	process.send(parent, "who", {
		id = a:id(),
		role = a:meta().role,
		grandchild = process.exec("app:who_inner", "app:processes"),
		can_read = security.can("data.read", "x"),
		can_write = security.can("admin.write", "x"),
	})
end
return { main = main }
