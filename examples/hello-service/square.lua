local function main(n: number): number
	return n * n
end

return { main = main }
