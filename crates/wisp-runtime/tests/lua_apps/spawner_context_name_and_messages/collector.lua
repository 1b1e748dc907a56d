local function main(parent)
	local seen = {}
	local inbox = process.inbox()
	while true do
		local m = inbox:receive()
		if m:topic() == "report" then
			process.send(parent, "report", table.concat(seen, ","))
			return
		end
		seen[#seen + 1] = m:topic() .. ":" .. tostring(m:payload():data())
	end
end
return { main = main }
