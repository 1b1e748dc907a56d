-- Sums the squares of first..last and sends the sum to the parent.
local function main(parent: string, first: number, last: number)
	local sum = 0
	for k = first, last do
		sum += k * k
	end
	process.send(parent, "sum", sum)
end

return { main = main }
